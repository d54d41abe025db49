"""The review queue: a version's top losses, live images worth a label, labelling them."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from core.app import Backends, encode_png, label_prediction, label_queue, top_losses
from core.app.vocabulary import NONE_OF_THESE_CLASSES
from core.cli.common import (
    Commands,
    actor,
    now,
    print_json,
    require_folder,
    version_arg,
    write_atomically,
)


def register(commands: Commands) -> None:
    review = commands.group("review", help="the review queue: a version's top losses, live "
                            "images worth a label, and labelling them")
    losses = review.add("losses", cmd_losses, json=True, help="a version's most confident "
                        "mistakes on the comparison holdout")
    queue = review.add("queue", cmd_queue, json=True, help="unlabelled live images: "
                       "unfamiliar, disagreed on, low confidence")
    for listing, default in ((losses, 12), (queue, 20)):
        listing.add_argument("--version", help="version (default: the champion)")
        listing.add_argument("--n", type=int, default=default,
                             help=f"how many images (default: {default})")
        listing.add_argument("--out", type=Path, metavar="FOLDER",
                             help="also write each image as a PNG into FOLDER"
                             + (" (beside its Grad-CAM)" if listing is losses else ""))
    label = review.add("label", cmd_label,
                       help="say what a logged image is (viewers and up)")
    label.add_argument("prediction", type=int, metavar="ID",
                       help="the prediction's log id (from 'review queue' or the Predict page)")
    answer = label.add_mutually_exclusive_group(required=True)
    answer.add_argument("--class", dest="class_name", metavar="NAME", help="its true class")
    answer.add_argument("--none-of-these", action="store_true",
                        help="it is none of the model's classes (kept out of training)")


def cmd_label(args: Namespace, backends: Backends) -> int:
    label = NONE_OF_THESE_CLASSES if args.none_of_these else args.class_name
    kept = label_prediction(backends, args.prediction, label, actor=actor(args), now=now())
    print(f"prediction {args.prediction} labelled: {label}" if kept.counted else
          f"prediction {args.prediction}: {label} kept as a suggestion; it counts once a "
          "signed-in user gives the same label (--actor NAME)")
    return 0


def cmd_losses(args: Namespace, backends: Backends) -> int:
    if args.out is not None:
        require_folder(args.out, "--out folder")
    result = top_losses(backends, version_arg(args.version), actor=actor(args), now=now(),
                        n=args.n)
    if args.out is not None:
        for rank, loss in enumerate(result.losses, start=1):
            write_atomically(args.out / f"loss-{rank:02d}-holdout-{loss.index}.png",
                             encode_png(loss.side_by_side))
    if args.json:
        print_json({"version": result.version, "holdout": result.holdout,
                    "mistakes": result.mistakes, "losses": [
                        {"index": x.index, "true": x.true_class,
                         "predicted": x.predicted_class,
                         "confidence": round(x.confidence, 4),
                         "true_probability": round(x.true_probability, 6),
                         "loss": round(x.loss, 4), "heatmap_empty": x.heatmap_empty}
                        for x in result.losses]})
        return 0
    print(f"version {result.version}: {result.mistakes} mistakes on {result.holdout} "
          f"holdout images; the {len(result.losses)} with the highest loss:")
    for rank, x in enumerate(result.losses, start=1):
        print(f"{rank:3d}. holdout #{x.index}: true {x.true_class}, predicted "
              f"{x.predicted_class} ({x.confidence:.1%}), loss {x.loss:.2f}")
    return 0


def cmd_queue(args: Namespace, backends: Backends) -> int:
    if args.out is not None:
        require_folder(args.out, "--out folder")
    queue = label_queue(backends, version_arg(args.version), actor=actor(args), now=now(),
                        n=args.n)
    if args.out is not None:
        for item in queue.items:
            write_atomically(args.out / f"prediction-{item.log_id}.png", encode_png(item.image))
    if args.json:
        print_json(queue.as_dict())
        return 0
    print(f"version {queue.version}: {queue.scanned} unlabelled live predictions; "
          + ", ".join(f"{count} {reason}" for reason, count in queue.counts.items()))
    for item in queue.items:
        other = (f"; v{item.candidate} said {item.candidate_label}"
                 if item.candidate_label else "")
        print(f"#{item.log_id} {item.at} {item.source}: {item.label} ({item.confidence:.1%})"
              f" [{', '.join(item.reasons)}]{other}")
    if queue.items:
        print("label one with: python -m core review label ID --class NAME "
              "(or --none-of-these)")
    if queue.none_of_these:
        print(f"people said {queue.none_of_these} image(s) fit none of the classes"
              + (f"; the OOD detector had flagged {queue.none_of_these_flagged} of them"
                 if queue.has_detector else ""))
    return 0

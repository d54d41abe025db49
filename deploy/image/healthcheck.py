"""The image's HEALTHCHECK: asks the process the container runs (PID 1, or the PID given
as the argument) whether it is alive, on the port it serves ($PORT, else the command's
default). Exit 0: healthy; 1: not."""

import os
import sys
import urllib.request


def main() -> int:
    pid = sys.argv[1] if len(sys.argv) > 1 else "1"
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        command = file.read().replace(b"\0", b" ").decode(errors="replace")
    if "streamlit" in command:
        url = f"http://127.0.0.1:{os.environ.get('PORT', '8501')}/_stcore/health"
    elif "core serve" in command:
        url = f"http://127.0.0.1:{os.environ.get('PORT', '8500')}/healthz"
    else:  # worker, monitor, a one-off command: alive while PID 1 runs
        return 0
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

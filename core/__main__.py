import os
import sys

# Keep TensorFlow's C++ start-up chatter off the terminal (errors still show).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.cli import main  # noqa: E402  (after the logging setting above)

sys.exit(main())

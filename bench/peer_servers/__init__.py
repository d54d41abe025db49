"""The servers ``python -m bench --only peers`` compares ours with, each written as its
documentation recommends for an image classifier, over the same TFLite file our API serves
(LiteRT, one thread per process): the figures compare serving, not runtimes. MLflow's
scoring server runs its own Keras flavour (``bench/peers.py`` logs the same model).

Settings come from the environment: ``PEER_TFLITE`` (the model file), ``PEER_HEIGHT``,
``PEER_WIDTH``, ``PEER_CHANNELS``. The image is decoded with Pillow, resized and scaled
to [0, 1], as our API does.
"""

"""Everything that learns or infers: data, images, models, training, Grad-CAM, comparison.

TensorFlow is imported inside the functions that need it, so the serving path
(``predictor``) and the application layer start without it.
"""

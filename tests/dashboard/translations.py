"""What a translated page may keep in English."""

from __future__ import annotations

import re

# Words a Hindi page keeps in Latin letters: names of methods, tools, formats and units
# that Hindi technical writing uses as they are. Anything else English is untranslated.
KEPT_IN_LATIN = re.compile(
    r"\b(McNemar|Wilson|Bonferroni|Jensen-Shannon|Grad-CAM|TensorBoard|TensorFlow|TFLite|ONNX|"
    r"Keras|"
    r"JPEG|PNG|WebP|BMP|GIF|TIFF|EXIF|HTTPS?|JSON|CSV|HTML|Markdown|SMTP|URL|API|CLI|UTC|"
    r"README|TF Serving|TF SavedModel|SavedModel|PCA|CBPE|ECE|MMD|PSI|KS|KL|F1|MB|float16|"
    r"float|int8|dynamic range|"
    r"Webhook|X-Signature|localhost|English|p50|p95|p99)\b", re.IGNORECASE)

"""UI-agnostic engine for operating an image-classification model.

Never imports streamlit (a test enforces it). Entry points: ``core.lifecycle``
for programs, ``python -m core`` for people and scripts.
"""

"""Face Attribute Hub: `python app.py` serves on http://127.0.0.1:7860.

A Hugging Face Space runs this same file with GRADIO_SERVER_NAME=0.0.0.0.
"""
from hub.ui import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)

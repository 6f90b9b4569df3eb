"""The online half: a Flask + gunicorn + onnxruntime service that serves the model repository."""

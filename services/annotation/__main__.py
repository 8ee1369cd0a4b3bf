"""``python -m services.annotation``"""

from services.annotation.app import init_app
from services.annotation.config import AnnotationSettings
from shared.web import serve

if __name__ == "__main__":
    serve(AnnotationSettings(), init_app)

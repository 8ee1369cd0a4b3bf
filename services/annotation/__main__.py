"""``python -m services.annotation``"""

from services.annotation.app import init_app
from services.annotation.config import AnnotationSettings
from shared.settings import settings_or_exit
from shared.web import serve

if __name__ == "__main__":
    serve(settings_or_exit(AnnotationSettings), init_app)

"""``python -m services.ingest``"""

from services.ingest.app import init_app
from services.ingest.config import IngestSettings
from shared.settings import settings_or_exit
from shared.web import serve

if __name__ == "__main__":
    serve(settings_or_exit(IngestSettings), init_app)

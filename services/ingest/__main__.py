"""``python -m services.ingest``"""

from services.ingest.app import init_app
from services.ingest.config import IngestSettings
from shared.web import serve

if __name__ == "__main__":
    serve(IngestSettings(), init_app)

"""``python -m services.search``"""

from services.search.app import init_app
from services.search.config import SearchSettings
from shared.web import serve

if __name__ == "__main__":
    serve(SearchSettings(), init_app)

"""``python -m services.search``"""

from services.search.app import init_app
from services.search.config import SearchSettings
from shared.settings import settings_or_exit
from shared.web import serve

if __name__ == "__main__":
    serve(settings_or_exit(SearchSettings), init_app)

"""`gunicorn bench.peers_django.wsgi:application`, PEERS_DATABASE_URL naming the database."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers_django.settings")
application = get_wsgi_application()

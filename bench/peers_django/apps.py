from django.apps import AppConfig


class PeersDjangoConfig(AppConfig):
    name = "bench.peers_django"
    label = "peers_django"

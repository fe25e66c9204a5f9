"""Extension objects, created unbound here and bound to the app in `create_app`."""

from broker.api_base import ProblemApi
from broker.db import Database

db = Database()
api = ProblemApi()

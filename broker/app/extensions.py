"""Extension objects, created unbound here and bound to the app in `create_app`."""

from broker.app.db import Database
from broker.app.problems import ProblemApi

db = Database()
api = ProblemApi()

"""The Docker Compose sample's hit counter (Flask + redis-py), kept as the benchmark's yardstick.

Same behaviour as the sample: GET / increments the Redis key "hits" and reports it, retrying a lost
connection a few times. REDIS_URL and REDIS_KEY_PREFIX let the benchmark point it at its own keys.
"""

import os
import time

import redis
from flask import Flask

app = Flask(__name__)
cache = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
hits_key = os.environ.get("REDIS_KEY_PREFIX", "") + "hits"


def get_hit_count():
    retries = 5
    while True:
        try:
            return cache.incr(hits_key)
        except redis.exceptions.ConnectionError:
            if retries == 0:
                raise
            retries -= 1
            time.sleep(0.5)


@app.route("/")
def hello():
    return "Hello World! I have been seen {} times.\n".format(get_hit_count())

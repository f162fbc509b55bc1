"""alpha12: watches ML trading-signal models per asset and timeframe and keeps them honest."""

import ast
import functools
import threading

__version__ = "0.1.0"


def _one_at_a_time(parse):
    lock = threading.RLock()

    @functools.wraps(parse)
    def parse_alone(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    return parse_alone


# CPython 3.11 keeps the AST constructor's recursion depth in state its threads share, so two
# threads building ASTs at once can fail with "AST constructor recursion depth mismatch"
# (python/cpython#106905; seen here when a page ran beside the engine). Streamlit parses every
# page script, and 3.11's traceback module parses the failing line of every traceback the
# engine's error events format: they take turns.
ast.parse = _one_at_a_time(ast.parse)

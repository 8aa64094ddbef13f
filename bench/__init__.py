"""converge's benchmark against ``docker stack deploy`` and the Docker API floor (issue 8).

Run it on the lab with ``python -m bench`` (see docs/performance.md).
"""

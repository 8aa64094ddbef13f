"""converge: make a Docker Swarm cluster match a declarative YAML spec."""

__version__ = "0.1.0"

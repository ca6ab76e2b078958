"""tt-deploy: Task Tokens on a frozen Behavior Foundation Model, from training to verified deployment."""

__version__ = "0.1.0"

"""snlu: spoken language understanding components (Chinese spoken NER first), assembled by recipes."""

__version__ = "0.1.0"

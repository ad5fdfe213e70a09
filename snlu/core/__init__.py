"""The leaf layer: helpers every part of snlu may import, importing nothing of snlu itself."""

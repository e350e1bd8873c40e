"""The plant's storage: manifest (SQLite), payload files, ingredient type specs."""

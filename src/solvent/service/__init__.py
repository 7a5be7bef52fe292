"""solvent as a service beside a venue: the engine behind a lock and a store (`venue`), the HTTP API, feeds in and
events out."""

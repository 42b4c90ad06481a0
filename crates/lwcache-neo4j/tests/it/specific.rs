//! What only a real Neo4j shows.

"""GraphQL surface: Strawberry types and resolvers, error translation and the HTTP transport."""

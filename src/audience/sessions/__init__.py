"""Console sessions: sign-in with an API key, server-side sessions, the sign-in rate limit."""

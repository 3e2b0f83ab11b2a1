"""`audience import FILE`: a client of POST /api/contacts.import that streams a file."""

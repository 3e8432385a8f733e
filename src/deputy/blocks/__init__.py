"""Pure block logic (no database): secret fields and their obfuscation, references in data,
encryption of stored data."""

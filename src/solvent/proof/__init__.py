"""Verifiable solvency: a Merkle-sum tree over every account's equity and requirements, each account's inclusion
proof and its check, and the venue's solvency statement with its Cover-2 stress figure (docs/proof.md)."""

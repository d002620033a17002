"""The theory benchmark: contextual bandits with exact expectations, under the fair-comparison protocol."""

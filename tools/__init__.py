"""What the agent can do: call state, tools and the agents (personas) that carry them."""

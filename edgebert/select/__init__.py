"""The selection stage: device profiles, budgets, costs, the latency model, quality, and the selector."""

"""The advisor dashboard: a Gradio app that talks to the REST gateway over HTTP only."""

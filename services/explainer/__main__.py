from services.explainer.server import serve

serve()

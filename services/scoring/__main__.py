from services.scoring.server import serve

serve()

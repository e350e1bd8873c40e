"""The picture of a pipeline (`pyplantd graph`, `pyplant graph`): a JSON model of reactors and the
ingredients between them, built here; the client package renders it (pyplant_client.graph_render).
"""

"""One module per view generator (registered in ``pipeline.registry``): ``one2345``, ``zero123plus``,
``zero123plus_nearby``."""

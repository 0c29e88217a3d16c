"""Expiry warnings: owners hear about a token before it expires.

``schedule.py`` decides which warning a token is due (pure), ``message.py``
writes what is sent, ``mail.py`` and ``webhook.py`` are the two channels,
and ``notifier.py`` runs the scan in one background task per process,
claiming each warning in the store so that it is sent once, whichever of
several workers or instances gets there first.
"""

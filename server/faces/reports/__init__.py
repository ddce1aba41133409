"""Measuring the support: customer satisfaction (``csat``: the rating links and the one rating a ticket
keeps, ``pages``: the customer's click and comment). The figures and report pages come next."""

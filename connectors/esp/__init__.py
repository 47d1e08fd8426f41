"""Email service providers: SendGrid v3, Mailchimp Transactional, SMTP and a signed webhook.

Each provider turns an :class:`~connectors.esp.message.EmailMessage` into its own request and its
answers into our exceptions (``TransientError`` to retry, ``PermanentError`` to dead-letter), in one
place per provider. :mod:`connectors.esp.resilience` adds retries, circuit breakers and fallback.
"""

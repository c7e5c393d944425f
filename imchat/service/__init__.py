"""Services own every transaction and raise `errors.ServiceError` subclasses.

They take and return plain values (ids, dicts), never live entities, so no caller
holds a Pony session.
"""

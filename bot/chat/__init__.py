"""The chat surface's machinery: the command registry, typed arguments, dispatch of an inbox
event to its handler and its answer, the templates' renderer, the classification guard, and
the services a handler is given."""

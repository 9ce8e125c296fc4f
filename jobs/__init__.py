"""The engine of the Book Marketing Agent: settings, storage, queue, tasks, events."""

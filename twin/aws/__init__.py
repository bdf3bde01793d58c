"""AWS services the twin emulates on top of moto."""

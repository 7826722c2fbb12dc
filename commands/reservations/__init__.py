"""Reservations: ReserveNow and CancelReservation with stored reservations."""

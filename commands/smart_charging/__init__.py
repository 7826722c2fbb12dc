"""Smart Charging: charging profiles, what each charger holds, composite schedules."""

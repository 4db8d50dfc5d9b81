"""The agent daemon: spawns sessions in PTYs and streams them to the relay. Never accepts inbound connections."""

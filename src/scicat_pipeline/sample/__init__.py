"""Sample data the demo replays."""

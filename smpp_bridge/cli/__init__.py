"""smpp_bridge.cli"""

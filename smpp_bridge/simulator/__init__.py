"""smpp_bridge.simulator"""

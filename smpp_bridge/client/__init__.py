"""smpp_bridge.client"""

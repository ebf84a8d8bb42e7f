"""smpp_bridge.session"""

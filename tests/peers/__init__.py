"""Real upstream servers (an embedded Apache Tomcat 10) for tests that must see what they see."""
